"""Every sentence, table and JSON document that the commands and the admin both show, built
once: pure functions from results to text or dicts, testable without a database.

    text       numbers and sentences ("3 migrations in 2 apps", byte sizes, states, archives)
    preview    the preview of a plan, line by line, its one-line summary and size sentence
    outcomes   what a save and a restore did (the command's lines, the admin's messages)
    documents  the JSON documents of rollback_migrations (docs/json.md)

This package imports none of its modules itself: the core modules use `text` without pulling
in the rest.
"""
