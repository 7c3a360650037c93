"""One store module per aggregate, each with its SQL in plain sight; ``rows`` holds the shared mapping."""
