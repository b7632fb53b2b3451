"""Session lifecycle: the domain core (model, state machine, service) and the ports it needs."""
