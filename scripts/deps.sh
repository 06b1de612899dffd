# Sourced by scripts/demo and scripts/test: installs the Debian packages a build needs when any
# is missing, then nothing else. Works as root, or through sudo when available.
quorum_packages=(g++ cmake ninja-build ccache catch2 libfmt-dev clang-format clang libclang-rt-14-dev libssl-dev libboost-dev)

quorum_install_deps() {
  local missing=()
  for pkg in "${quorum_packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
      missing+=("$pkg")
    fi
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "installing missing packages: ${missing[*]}"
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null; then sudo="sudo"; else
      echo "error: missing packages (${missing[*]}) and not root; install them, then retry" >&2
      return 1
    fi
  fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
}
