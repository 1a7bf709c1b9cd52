// Internal to common/archive: the layout of a POSIX ustar header block, shared by the
// writer and the reader. Not for use outside this folder.
#ifndef DROVER_COMMON_ARCHIVE_TAR_FORMAT_H_
#define DROVER_COMMON_ARCHIVE_TAR_FORMAT_H_

#include <cstddef>
#include <cstdint>

namespace drover::archive::tar {

inline constexpr size_t kBlockSize = 512;

// Field offsets and sizes in a header block (POSIX.1-1988 ustar).
struct Field {
  size_t offset;
  size_t size;
};
inline constexpr Field kName{0, 100};
inline constexpr Field kMode{100, 8};
inline constexpr Field kUid{108, 8};
inline constexpr Field kGid{116, 8};
inline constexpr Field kSize{124, 12};
inline constexpr Field kMtime{136, 12};
inline constexpr Field kChecksum{148, 8};
inline constexpr Field kTypeflag{156, 1};
inline constexpr Field kLinkname{157, 100};
inline constexpr Field kMagic{257, 6};
inline constexpr Field kVersion{263, 2};
inline constexpr Field kUname{265, 32};
inline constexpr Field kGname{297, 32};
inline constexpr Field kDevMajor{329, 8};
inline constexpr Field kDevMinor{337, 8};
inline constexpr Field kPrefix{345, 155};

// Type flags.
inline constexpr char kRegular = '0';
inline constexpr char kRegularOld = '\0';
inline constexpr char kHardLink = '1';
inline constexpr char kSymlink = '2';
inline constexpr char kCharDevice = '3';
inline constexpr char kBlockDevice = '4';
inline constexpr char kDirectory = '5';
inline constexpr char kFifo = '6';
inline constexpr char kContiguous = '7';
inline constexpr char kPaxExtended = 'x';
inline constexpr char kPaxGlobal = 'g';
inline constexpr char kGnuLongName = 'L';
inline constexpr char kGnuLongLink = 'K';
inline constexpr char kGnuSparse = 'S';

// Largest value an 11-digit octal size or mtime field holds (8 GiB - 1).
inline constexpr uint64_t kMaxOctal11 = 077777777777ULL;

}  // namespace drover::archive::tar

#endif  // DROVER_COMMON_ARCHIVE_TAR_FORMAT_H_
