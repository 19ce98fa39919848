# Writes OUT, a C file defining sb_api_openapi(): the bytes of IN (the
# OpenAPI document) as a NUL-terminated string.
file(READ ${IN} hex HEX)
string(LENGTH "${hex}" n)
math(EXPR len "${n} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
string(REGEX REPLACE "((0x..,){16})" "\\1\n" bytes "${bytes}")
file(WRITE ${OUT}
  "/* Generated from docs/openapi.json by cmake/embed.cmake. */\n"
  "#include <stddef.h>\n"
  "const char *sb_api_openapi(size_t *len);\n"
  "static const char DOC[] = {\n${bytes}0x00};\n"
  "const char *sb_api_openapi(size_t *len)\n{\n"
  "    *len = ${len};\n    return DOC;\n}\n")
