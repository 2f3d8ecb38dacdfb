"""The HTTP plumbing every route shares, naming no source or platform: bounded bodies and JSON
answers, client addresses, the edge middleware, the failed-credential and store guards, and
the admin token check. Sources, the dashboard and the app import it; it imports none of them."""
