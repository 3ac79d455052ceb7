"""HTTP: parse -> call a service -> shape JSON. No SQL, no auth rules here."""
