"""From RIRs to model inputs: dry sources, reverberant mixtures, STFT phase features, labels."""
