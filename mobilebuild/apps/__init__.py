"""The flows a command runs end to end: the apps (Android, iOS, Pi), setup and doctor."""
