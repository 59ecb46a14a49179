"""The insurance e-prescription feed (医保电子处方流转, issue 16 / POL-18): a subscription channel
that speaks the national insurance platform's JSON interfaces instead of FHIR."""
