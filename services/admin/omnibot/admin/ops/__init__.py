"""The operations of management, one module per area, shared by every front end.

`agents`, `channels` (with `activation`, the four checks), `chats`, `deadletters` and `secrets`
each return the typed answers of `omnibot.admin.schemas` and raise `Refused` with every problem
listed; nothing is saved then. The front ends (admin HTTP API, `omnibot` command line, the web
console) encode the answers only at their edge. `omnibot.admin.operations.Management` puts the
areas together over one database.
"""
