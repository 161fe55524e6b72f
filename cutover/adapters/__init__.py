"""The only package that talks to AWS: boto3 and botocore are imported here and nowhere else on the
production path. `aws.make_ports` builds every port of `cutover.ports` from one session."""
