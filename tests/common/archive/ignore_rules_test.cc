#include "common/archive/ignore_rules.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace drover::archive {
namespace {

struct Case {
  const char* rules;  // contents of the root ignore file
  const char* path;
  bool is_dir;
  bool excluded;  // by ExcludesWithParents
};

// The examples of https://git-scm.com/docs/gitignore, plus the corner cases of its
// PATTERN FORMAT section, checked path by path.
const Case kGitDocumentedCases[] = {
    // "hello.*" matches any file or folder whose name begins with "hello.".
    {"hello.*", "hello.txt", false, true},
    {"hello.*", "src/hello.c", false, true},
    {"hello.*", "hello", false, false},
    // "foo/" matches a folder foo and paths underneath it, but not a file foo.
    {"foo/", "foo", true, true},
    {"foo/", "a/foo", true, true},
    {"foo/", "foo/x.txt", false, true},
    {"foo/", "foo", false, false},
    // "doc/frotz/" matches doc/frotz but not a/doc/frotz; "frotz/" matches both.
    {"doc/frotz/", "doc/frotz", true, true},
    {"doc/frotz/", "a/doc/frotz", true, false},
    {"frotz/", "doc/frotz", true, true},
    {"frotz/", "a/doc/frotz", true, true},
    // "/bar" matches bar at the root only.
    {"/bar", "bar", false, true},
    {"/bar", "a/bar", false, false},
    // A pattern with no slash matches at any level.
    {"*.html", "index.html", false, true},
    {"*.html", "docs/api/index.html", false, true},
    // "foo/*" matches foo/test.json and the folder foo/bar, and (as its parent is
    // excluded) everything below foo/bar.
    {"foo/*", "foo/test.json", false, true},
    {"foo/*", "foo/bar", true, true},
    {"foo/*", "foo/bar/hello.c", false, true},
    {"foo/*", "foo", true, false},
    // "doc/*.txt": '*' does not match a slash.
    {"doc/*.txt", "doc/notes.txt", false, true},
    {"doc/*.txt", "doc/server/arch.txt", false, false},
    // Leading "**/" matches in all folders.
    {"**/foo", "foo", false, true},
    {"**/foo", "a/b/foo", true, true},
    {"**/foo/bar", "foo/bar", false, true},
    {"**/foo/bar", "x/foo/bar", false, true},
    {"**/foo/bar", "x/bar", false, false},
    // Trailing "/**" matches everything inside, not the folder itself.
    {"abc/**", "abc/x", false, true},
    {"abc/**", "abc/x/y/z", false, true},
    {"abc/**", "abc", true, false},
    // "/**/" matches zero or more folders.
    {"a/**/b", "a/b", false, true},
    {"a/**/b", "a/x/b", false, true},
    {"a/**/b", "a/x/y/b", false, true},
    {"a/**/b", "a/x/c", false, false},
    // Other consecutive asterisks are ordinary asterisks.
    {"a**b", "axxb", false, true},
    {"a**b", "ax/xb", false, false},
    // '?' matches one character except '/'.
    {"?.py", "a.py", false, true},
    {"?.py", "ab.py", false, false},
    {"a?b", "a/b", false, false},
    // Bracket expressions.
    {"[abc].txt", "b.txt", false, true},
    {"[abc].txt", "d.txt", false, false},
    {"x[a-c]", "xb", false, true},
    {"x[a-c]", "xd", false, false},
    {"x[!a]", "xa", false, false},
    {"x[!a]", "xb", false, true},
    {"x[^a]", "xb", false, true},
    {"v[[:digit:]]", "v7", false, true},
    {"v[[:digit:]]", "vx", false, false},
    {"[]]", "]", false, true},
    {"[a-]", "-", false, true},
    {"unterminated[", "unterminated[", false, false},
    // Comments, blank lines, escapes, trailing spaces.
    {"# comment\n\n*.o", "# comment", false, false},
    {"# comment\n\n*.o", "x.o", false, true},
    {"\\#hash", "#hash", false, true},
    {"\\!bang", "!bang", false, true},
    {"trailing   ", "trailing", false, true},
    {"kept\\ ", "kept ", false, true},
    {"kept\\ ", "kept", false, false},
    {"\\*", "*", false, true},
    {"\\*", "x", false, false},
    {"crlf\r\n", "crlf", false, true},
    // Negation: the last matching pattern wins.
    {"*.log\n!important.log", "debug.log", false, true},
    {"*.log\n!important.log", "important.log", false, false},
    {"!important.log\n*.log", "important.log", false, true},
    // A file cannot be re-included when a parent folder is excluded.
    {"build/\n!build/keep.txt", "build/keep.txt", false, true},
    // ... but re-including the folder's contents pattern by pattern works.
    {"/*\n!/foo\n/foo/*\n!/foo/bar", "foo/bar", true, false},
    {"/*\n!/foo\n/foo/*\n!/foo/bar", "foo/bar/x.c", false, false},
    {"/*\n!/foo\n/foo/*\n!/foo/bar", "foo/baz", false, true},
    {"/*\n!/foo\n/foo/*\n!/foo/bar", "other", false, true},
    // A leading slash anchors; one in the middle anchors too.
    {"src/gen", "src/gen", true, true},
    {"src/gen", "lib/src/gen", true, false},
};

TEST(IgnoreRulesTest, FollowsGitDocumentedExamples) {
  for (const Case& c : kGitDocumentedCases) {
    IgnoreRules rules;
    rules.AddFile("", c.rules);
    EXPECT_EQ(rules.ExcludesWithParents(c.path, c.is_dir), c.excluded)
        << "rules:\n"
        << c.rules << "\npath: " << c.path << (c.is_dir ? " (folder)" : "");
  }
}

TEST(IgnoreRulesTest, ExcludesLooksAtThePathAlone) {
  IgnoreRules rules;
  rules.AddFile("", "foo/*\n");
  EXPECT_TRUE(rules.Excludes("foo/bar", true));
  EXPECT_FALSE(rules.Excludes("foo/bar/hello.c", false));
  EXPECT_TRUE(rules.ExcludesWithParents("foo/bar/hello.c", false));
}

TEST(IgnoreRulesTest, DeeperFilesDecideFirstAndAnchorAtTheirFolder) {
  IgnoreRules rules;
  rules.AddFile("", "*.tmp\n");
  rules.AddFile("sub", "!keep.tmp\n/local\n");
  EXPECT_TRUE(rules.Excludes("a.tmp", false));
  EXPECT_TRUE(rules.Excludes("keep.tmp", false));       // the root file alone decides
  EXPECT_FALSE(rules.Excludes("sub/keep.tmp", false));  // the deeper file re-includes
  EXPECT_TRUE(rules.Excludes("sub/other.tmp", false));  // falls through to the root
  EXPECT_FALSE(rules.Excludes("sub/deep/keep.tmp", false));
  EXPECT_TRUE(rules.Excludes("sub/local", false));  // "/local" anchors at sub/
  EXPECT_FALSE(rules.Excludes("sub/deep/local", false));
  EXPECT_FALSE(rules.Excludes("local", false));
}

TEST(IgnoreRulesTest, EmptyRulesExcludeNothing) {
  IgnoreRules rules;
  EXPECT_TRUE(rules.empty());
  rules.AddFile("", "# only a comment\n\n   \n");
  EXPECT_TRUE(rules.empty());
  EXPECT_FALSE(rules.ExcludesWithParents("anything/at/all", false));
}

// A selection of git's own wildmatch tests (t/t3070-wildmatch.sh, "pathmatch" column).
TEST(GlobMatchTest, AgreesWithGitWildmatch) {
  struct {
    const char* pattern;
    const char* text;
    bool match;
  } cases[] = {
      {"foo", "foo", true},
      {"bar", "foo", false},
      {"", "", true},
      {"???", "foo", true},
      {"??", "foo", false},
      {"*", "foo", true},
      {"f*", "foo", true},
      {"*f", "foo", false},
      {"*foo*", "foo", true},
      {"*ob*a*r*", "foobar", true},
      {"*ab", "aaaaaaabababab", true},
      {"foo\\*", "foo*", true},
      {"foo\\*bar", "foobar", false},
      {"f\\\\oo", "f\\oo", true},
      {"*[al]?", "ball", true},
      {"[ten]", "ten", false},
      {"**[!te]", "ten", true},
      {"**[!ten]", "ten", false},
      {"t[a-g]n", "ten", true},
      {"t[!a-g]n", "ten", false},
      {"t[!a-g]n", "ton", true},
      {"t[^a-g]n", "ton", true},
      {"a[]]b", "a]b", true},
      {"a[]-]b", "a-b", true},
      {"a[]a-]b", "aab", true},
      {"]", "]", true},
      {"foo*bar", "foo/baz/bar", false},
      {"foo**bar", "foo/baz/bar", false},
      {"foo?bar", "foo/bar", false},
      {"foo[/]bar", "foo/bar", false},
      {"f[^eiu][^eiu][^eiu][^eiu][^eiu]r", "foo-bar", true},
      {"**/foo", "foo", true},
      {"**/foo", "XXX/foo", true},
      {"**/foo", "bar/baz/foo", true},
      {"*/foo", "bar/baz/foo", false},
      {"**/bar*", "foo/bar/baz", false},
      {"**/bar/*", "deep/foo/bar/baz", true},
      {"**/bar/*", "deep/foo/bar/baz/", false},
      {"**/bar/**", "deep/foo/bar/baz/", true},
      {"**/bar/*", "deep/foo/bar", false},
      {"**/bar/**", "deep/foo/bar/", true},
      {"*/bar/**", "foo/bar/baz/x", true},
      {"**/foo/bar", "foo/bar", true},
      {"foo/**/bar", "foo/bar", true},
      {"foo/**/**/bar", "foo/b/a/z/bar", true},
      {"foo/**/bar", "foo/b/a/z/bar", true},
      {"*.c", "mozilla-sha1/sha1.c", false},
      {"**/*.c", "mozilla-sha1/sha1.c", true},
      {"*/*/*", "foo/bba/arr", true},
      {"*/*/*", "foo/bb/aa/rr", false},
      {"**/**/**", "foo/bb/aa/rr", true},
      {"*X*i", "abcXdefXghi", true},
      {"*/*X*/*/*i", "ab/cXd/efXg/hi", true},
      {"**/*X*/**/*i", "ab/cXd/efXg/hi", true},
      {"[[:alpha:]][[:digit:]][[:upper:]]", "a1B", true},
      {"[[:digit:][:upper:][:space:]]", "a", false},
      {"[[:digit:][:upper:][:space:]]", "A", true},
      {"[[:xdigit:]]", "5", true},
      {"[[:foo:]]", "a", false},
      {"[a-c]*", "b/x", false},
      {"-*-*-*-*-*-*-12-*-*-*-m-*-*-*", "-adobe-courier-bold-o-normal--12-120-75-75-m-70-iso8859-1",
       true},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(GlobMatch(c.pattern, c.text), c.match)
        << "pattern '" << c.pattern << "' text '" << c.text << "'";
  }
}

}  // namespace
}  // namespace drover::archive
