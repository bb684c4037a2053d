"""Tooling around the chapters: a throwaway broker, a process runner, the guided tour."""
