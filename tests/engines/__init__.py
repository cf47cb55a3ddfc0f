"""Value classes written independently of pure, as third parties would: correct ones and ones with one wrong rule."""
