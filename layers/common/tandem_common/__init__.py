"""Shared Lambda code for Tandem: settings, models, job store, storage, chunking, webhooks."""
