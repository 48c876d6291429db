"""The SSL model and its training: Conformer model, crops, loss and schedule, validation, the
training loop, checkpoints, DDP, the model file, and pooled-window inference."""
