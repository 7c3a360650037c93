"""One store module per aggregate, each with its SQL in plain sight; ``rows`` holds the shared mapping.

``OWNERS`` names the one module whose SQL may read or write each table (tests/test_table_owners.py
checks it against ``sql/*.sql`` and the code); every other module calls that store.
"""

OWNERS: dict[str, str] = {
    "nodes": "controller.stores.nodes",
    "tenants": "controller.stores.tenants",
    "users": "controller.stores.users",
    "conferences": "controller.stores.conferences",
    "ivrs": "controller.stores.ivrs",
    "gateways": "controller.stores.gateways",
    "numbers": "controller.stores.numbers",
    "mixers": "controller.stores.mixers",
    "console_sessions": "controller.stores.console_sessions",
    "placement_generations": "controller.stores.placements",
    "tenant_placements": "controller.stores.placements",
    "conference_placements": "controller.stores.placements",
    "api_tokens": "controller.stores.tokens",
    "failovers": "controller.stores.failovers",
    "node_joins": "controller.stores.node_joins",
    "voicemail_messages": "controller.stores.voicemail_messages",
    "storage_tombstones": "controller.stores.tombstones",
    "esl_live_calls": "controller.stores.live_calls",
    "esl_cdrs": "controller.stores.cdrs",
    "esl_registrations": "controller.stores.registrations",
    "esl_conference_members": "controller.stores.conference_members",
    "esl_node_stats": "controller.stores.node_stats",
    "esl_command_jobs": "controller.stores.command_jobs",
    "rate_decks": "controller.stores.rate_decks",
    "rates": "controller.stores.rate_decks",
    "deck_assignments": "controller.stores.rate_decks",
    "billing_accounts": "controller.stores.accounts",
    "ledger_entries": "controller.stores.ledger",
    "billing_legs_up": "controller.stores.legs_up",
    # Kamailio reads these views itself (db_postgres); they are ours to define and to check.
    "kamailio_version": "controller.stores.kamailio",
    "kamailio_dispatcher": "controller.stores.kamailio",
    "kamailio_domains": "controller.stores.kamailio",
    "kamailio_numbers": "controller.stores.kamailio",
    "schema_migrations": "sql.migrate",
}

# Tables a store only reads, in a join or subquery, to answer its own question in one query (never writes).
READS: dict[str, frozenset[str]] = {
    "controller.stores.tenants": frozenset({"users", "conferences", "ivrs"}),
    "controller.stores.placements": frozenset({"tenants", "conferences"}),
    "controller.stores.failovers": frozenset({"nodes"}),
    "controller.stores.live_calls": frozenset({"nodes"}),
    "controller.stores.registrations": frozenset({"nodes"}),
    "controller.stores.conference_members": frozenset({"nodes", "esl_registrations"}),
    "controller.stores.command_jobs": frozenset({"nodes"}),
    "controller.stores.accounts": frozenset({"users"}),
}
