"""The API's request and response models, one module per resource (`common`: what they share).
The agent API answers with protocol.wire models."""
