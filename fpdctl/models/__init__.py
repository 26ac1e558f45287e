"""The Stacked Hourglass model family: specs, the network, and checkpoint formats."""
