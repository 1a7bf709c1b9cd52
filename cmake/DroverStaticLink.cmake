# drover_link_statically(TARGET): links an executable's C++ dependencies from their static
# archives (Debian's -dev packages ship them beside the shared libraries): gRPC, protobuf,
# Abseil, OpenSSL, c-ares, re2, zlib, libstdc++ itself, and glibc (-static). The program then
# needs no shared library and no dynamic loader at run time: the `drover` CLI, which runs
# once per command, loaded 57 shared libraries and spent about half of a short command's
# time in the loader (issue 18); linking glibc statically too took another 7 % off
# `drover version`'s instructions and 40 page faults off every command.
#
# How: the archives are put on the link line in one group right after the target's own
# libraries, so they resolve every symbol first; the link runs through
# cmake/drover_static_link.sh, which takes the shared libraries that the imported targets
# still name off the line and adds -static. tests/cli checks the result (no dynamic section).
# glibc warns that getaddrinfo, getservbyname and dlopen in a static program need the
# shared NSS modules of the same glibc at run time: the CLI resolves names with c-ares
# (gRPC's default resolver, which reads /etc/hosts and /etc/resolv.conf itself), not NSS.
function(drover_link_statically target)
  find_library(DROVER_STATIC_GRPCPP NAMES libgrpc++.a REQUIRED)
  get_filename_component(dir "${DROVER_STATIC_GRPCPP}" DIRECTORY)
  set(archives)
  foreach(name grpc++ grpc gpr upb address_sorting re2 cares protobuf ssl crypto z)
    if(NOT EXISTS "${dir}/lib${name}.a")
      message(FATAL_ERROR "${dir}/lib${name}.a is missing: the static CLI needs the static "
                          "archives of Debian's -dev packages (deploy/install-deps.sh), or "
                          "configure with -DDROVER_STATIC_CLI=OFF")
    endif()
    list(APPEND archives "${dir}/lib${name}.a")
  endforeach()
  # Every Abseil archive: only the members something uses are linked.
  file(GLOB absl_archives "${dir}/libabsl_*.a")
  list(APPEND archives ${absl_archives})
  # Not position-independent: a PIE this size spends most of its start relocating itself.
  set_target_properties(${target} PROPERTIES POSITION_INDEPENDENT_CODE OFF)
  target_link_options(${target} PRIVATE -no-pie -static-libstdc++ -static-libgcc)
  set_target_properties(${target} PROPERTIES
    RULE_LAUNCH_LINK "${PROJECT_SOURCE_DIR}/cmake/drover_static_link.sh")
  target_link_libraries(${target} PRIVATE -Wl,--start-group ${archives} -Wl,--end-group
                        Threads::Threads ${CMAKE_DL_LIBS})
endfunction()
