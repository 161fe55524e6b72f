"""The plan as data, frozen once loaded: flags, checks, phases (`plan`), the rollback program
(`program`: what a rollback writes, in which order), durations, schedules, template syntax and the plan's
fingerprints. Pure: imports only the standard library and the leaves."""
