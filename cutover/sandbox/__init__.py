"""A whole AWS account on this machine, for rehearsals: moto's server (`emulator`), the HTTP stub
for http/graphql checks, seeding (`seed`), and `cutover rehearse` (`rehearse`). Never on the production
path: only the CLI's `sandbox` and `rehearse` commands and the sandbox stub rerouting import it."""
