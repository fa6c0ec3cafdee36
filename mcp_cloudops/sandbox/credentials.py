"""Well-known sandbox credentials: public by design, accepted only by the simulators.

The `TEAM_` ones are the sandbox's second account (`team`): same shapes, other values. Each simulator
accepts only its own, so a key sent to the wrong account is refused as the real API refuses it.
"""

EXOSCALE_API_KEY = "EXOsandbox0000000000000000"
EXOSCALE_API_SECRET = "sandbox-secret-" + "s" * 28
SCW_SECRET_KEY = "11111111-2222-4333-8444-555555555555"
PORTAINER_API_KEY = "ptr_sandbox_key_0000000000000000000000000000"
NIRVANA_LABS_API_KEY = "nirvana-sandbox-key-000000000000"

TEAM_EXOSCALE_API_KEY = "EXOsandboxteam000000000000"
TEAM_EXOSCALE_API_SECRET = "sandbox-team-secret-" + "t" * 23
TEAM_SCW_SECRET_KEY = "66666666-7777-4888-9999-aaaaaaaaaaaa"
TEAM_PORTAINER_API_KEY = "ptr_sandbox_team_key_00000000000000000000000"
TEAM_NIRVANA_LABS_API_KEY = "nirvana-sandbox-team-key-0000000"
