"""The file the Hugging Face trainers write beside each checkpoint with the method's state (OLS soft
labels, LS++/LLS tables, the schedule's position); ``labelreg-nlp neighbours`` reads it."""

STATE_FILE = "labelreg_state.pt"
