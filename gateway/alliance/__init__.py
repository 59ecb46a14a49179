"""The alliance's own work: formulary, prescription review, supply and stock."""
