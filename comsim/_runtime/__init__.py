"""comsim's runtime: moves messages between apartments' loops and waits. No COM rule lives here."""
