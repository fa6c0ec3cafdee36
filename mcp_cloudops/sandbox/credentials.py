"""Well-known sandbox credentials: public by design, accepted only by the simulators."""

EXOSCALE_API_KEY = "EXOsandbox0000000000000000"
EXOSCALE_API_SECRET = "sandbox-secret-" + "s" * 28
SCW_SECRET_KEY = "11111111-2222-4333-8444-555555555555"
PORTAINER_API_KEY = "ptr_sandbox_key_0000000000000000000000000000"
NIRVANA_LABS_API_KEY = "nirvana-sandbox-key-000000000000"
