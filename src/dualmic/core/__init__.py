"""What every stage shares: params and their schema, errors, atomic files, progress, devices,
the angle-label conventions and the import closure of the code itself."""
