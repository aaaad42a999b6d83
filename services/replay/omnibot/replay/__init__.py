"""replay: conversation transcripts of omnibot/transcript@1, run through the engine or the pipeline."""
