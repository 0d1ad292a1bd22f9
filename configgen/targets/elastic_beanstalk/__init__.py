"""Elastic Beanstalk's Docker platform on Amazon Linux 2023: the files, the bundle, its check."""
