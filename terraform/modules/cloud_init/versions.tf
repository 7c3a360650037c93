# Provider-neutral: this module only renders text with templatefile(), so it needs no provider.
terraform {
  required_version = ">= 1.3"
}
