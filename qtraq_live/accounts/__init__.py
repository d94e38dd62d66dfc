"""Patient accounts: registration, linked patients, appointments, consent and privacy rights."""
