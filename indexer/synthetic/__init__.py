"""The synthetic shapes benchmark: real encoded videos and images of coloured shapes, with captions and splits."""
