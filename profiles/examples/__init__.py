"""Valid and invalid examples of the alliance profiles (see index.json)."""
