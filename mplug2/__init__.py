"""mPLUG-2 for retrieval: video, image and text encoders, the fusion encoder, and the ITC/ITM heads."""
