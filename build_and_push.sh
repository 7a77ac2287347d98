#!/usr/bin/env bash
# Builds the image and pushes it to Amazon ECR in the account and region of your AWS credentials.
#
#   ./build_and_push.sh IMAGE_NAME [TAG]
#
# IMAGE_NAME  the ECR repository; created (with scan on push) if it does not exist
# TAG         default: the git short SHA, with -dirty when the work tree has changes; `latest` is pushed too
#
# The region is the first set of $AWS_REGION, $AWS_DEFAULT_REGION and `aws configure get region`.
# REGISTRY=host[:port] pushes to that registry instead of ACCOUNT.dkr.ecr.REGION.amazonaws.com, still
# logging in with the ECR password; the tests use it with a local registry and a local ECR stand-in.
# The last line printed is the full image URI, for `--algorithm-specification TrainingImage=...`.
set -euo pipefail

die() {
  echo "error: $*" >&2
  exit 1
}

say() {
  echo "build_and_push: $*" >&2
}

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

[[ $# -ge 1 && $# -le 2 ]] || die "usage: $0 IMAGE_NAME [TAG]"
name="$1"
# ECR's rules for repository names and image tags, checked before anything is created.
[[ "$name" =~ ^([a-z0-9]+([._-][a-z0-9]+)*/)*[a-z0-9]+([._-][a-z0-9]+)*$ ]] ||
  die "IMAGE_NAME '$name' is not a valid ECR repository name (lower-case letters, digits, . _ - /)"
if [[ $# -eq 2 ]]; then
  tag="$2"
elif tag="$(git -C "$here" rev-parse --short HEAD 2>/dev/null)"; then
  [[ -z "$(git -C "$here" status --porcelain)" ]] || tag="$tag-dirty"
else
  die "no TAG given and $here is not in a git checkout"
fi
[[ "$tag" =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]] || die "TAG '$tag' is not a valid image tag"

command -v docker >/dev/null || die "docker is not installed (https://docs.docker.com/get-docker/)"
command -v aws >/dev/null || die "the aws CLI is not installed (https://aws.amazon.com/cli/)"
docker version >/dev/null 2>&1 || die "no Docker engine answers${DOCKER_HOST:+ at $DOCKER_HOST}: start Docker and retry"
if [[ -n "${AWS_REGION:-}" ]]; then
  region="$AWS_REGION" source="AWS_REGION"
elif [[ -n "${AWS_DEFAULT_REGION:-}" ]]; then
  region="$AWS_DEFAULT_REGION" source="AWS_DEFAULT_REGION"
elif region="$(aws configure get region)" && [[ -n "$region" ]]; then
  source="aws configure get region"
else
  die "no AWS region: set AWS_REGION or run 'aws configure set region REGION'"
fi
if ! account="$(aws sts get-caller-identity --region "$region" --query Account --output text 2>&1)"; then
  die "no usable AWS credentials: $(echo "$account" | tr -s '\n' ' ' | sed 's/ $//')"
fi
say "account $account, region $region (from $source)"

domain="amazonaws.com"
[[ "$region" != cn-* ]] || domain="amazonaws.com.cn"
registry="${REGISTRY:-$account.dkr.ecr.$region.$domain}"
image="$registry/$name"

if ! aws ecr describe-repositories --region "$region" --repository-names "$name" >/dev/null 2>&1; then
  say "creating the ECR repository $name"
  aws ecr create-repository --region "$region" --repository-name "$name" \
    --image-scanning-configuration scanOnPush=true >/dev/null
fi

aws ecr get-login-password --region "$region" |
  docker login --username AWS --password-stdin "$registry" >/dev/null

# SageMaker runs x86_64 images: build for it even on an arm64 laptop.
docker build --platform linux/amd64 --tag "$image:$tag" --tag "$image:latest" "$here/container" >&2
docker push "$image:$tag" >&2
docker push "$image:latest" >&2

echo "$image:$tag"
