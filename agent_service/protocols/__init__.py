"""One module per wire protocol (request → agent run, events → frames and body); the
registry (`protocols.registry`) declares them."""
