"""The latency gate module's parts (plugins/modules/latency_gate.py), one job per file.

params (parameters -> request plan), wire (socket-level timing), engine (sending the requests),
measurement (what the engine hands over), judge (figures, limits, failure lines), result_file (save_to).
"""
