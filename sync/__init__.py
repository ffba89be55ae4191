"""Hand-over to the cloud: manifests, signing, EPCIS export, outbox and push."""
