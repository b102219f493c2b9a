"""The emulated instance really is aarch64, and preflight passed there with the default list."""


def test_machine_is_aarch64(host):
    assert host.system_info.arch == "aarch64"


def test_python_is_an_aarch64_binary(host):
    # ELF header e_machine 0xB7 = EM_AARCH64: the interpreter runs under qemu-user, not natively.
    header = host.check_output("head -c 20 /usr/bin/python3 | od -An -tx1 -j18 -N2").split()
    assert header == ["b7", "00"]


def test_lock_released(host):
    assert host.file("/var/lib/voxtral-deploy").is_directory
    assert not host.file("/var/lib/voxtral-deploy/flight.lock").exists
