mongodb:
  pkg.installed: []
