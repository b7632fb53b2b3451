"""The live view: a page that shows a session's browser over CDP and forwards a person's input."""
