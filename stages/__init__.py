"""One thin entry point per DVC stage: parse arguments and params, call pipeline/, write outputs."""
