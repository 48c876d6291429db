"""Rooms and their impulse responses: room sampling, FRA-RIR, the ISM cross-check, acoustic
measures (RT60, DRR, arrival times) and the simulator-fidelity statistics."""
