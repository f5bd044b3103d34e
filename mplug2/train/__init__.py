"""Training mPLUG-2 for retrieval: ITC (optionally with momentum queues and distillation, as mPLUG v1) + ITM."""
