"""Use cases: each public function is one thing a user does."""
