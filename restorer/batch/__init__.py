"""``restorer restore`` on files: streaming, resumable, and shared out across processes."""
