"""AWS App Runner: a CloudFormation template (stack/app-runner.yaml) for the platform image."""
