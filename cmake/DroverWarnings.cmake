# drover_target_defaults(TARGET): the warning set every Drover target compiles with. Kept
# per target (no global flags) so generated protobuf code is not held to it.
function(drover_target_defaults target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers
                         $<$<CONFIG:Debug>:-Werror>)
endfunction()
