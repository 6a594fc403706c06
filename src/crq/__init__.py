"""crq: run AWS Clean Rooms protected queries unattended, and say how each one ended."""
