"""Neural parts the model wires together: the joint's diagonal, heads on encoder frames, layer taps."""
