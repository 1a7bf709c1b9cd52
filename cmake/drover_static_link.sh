#!/usr/bin/env bash
# The link launcher of drover_link_statically (cmake/DroverStaticLink.cmake): runs the link
# command it is given without the shared libraries that imported targets put on it (their
# static archives are on the line already, first) and with -static, so that glibc too comes
# from its archive and the program needs no dynamic loader at all.
args=()
for arg in "$@"; do
  case $arg in
    /*.so | /*.so.[0-9]*) ;;
    *) args+=("$arg") ;;
  esac
done
exec "${args[@]}" -static
