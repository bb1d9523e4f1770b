package disko

import (
	"regexp"
	"strings"
)

// sgdiskTypes maps sgdisk's four-hex-digit type codes (gdisk parttypes.cc)
// to partition type GUIDs: the codes disko configs use, and the common
// neighbours a hand-written layout may reach for.
var sgdiskTypes = map[string]string{
	"0700": "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7", // Microsoft basic data
	"0C01": "E3C9E316-0B5C-4DB8-817D-F92DF00215AE", // Microsoft reserved
	"2700": "DE94BBA4-06D1-4D40-A16A-BFD50179D6AC", // Windows RE
	"3000": "7412F7D5-A156-4B13-81DC-867174929325", // ONIE boot
	"3001": "D4E6E2CD-4469-46F3-B5CB-1BFF57AFC149", // ONIE config
	"4100": "9E1A2D38-C612-4316-AA26-8B49521E5A8B", // PowerPC PReP boot
	"4200": "AF9B60A0-1431-4F62-BC68-3311714A69AD", // Windows LDM data
	"4201": "5808C8AA-7E8F-42E0-85D2-E1E90434CFB3", // Windows LDM metadata
	"4202": "E75CAF8F-F680-4CEE-AFA3-B001E56EFC2D", // Windows Storage Spaces
	"7F00": "FE3A2A5D-4F32-41A7-B725-ACCC3285A309", // ChromeOS kernel
	"7F01": "3CB8E202-3B7E-47DD-8A3C-7FF2A13CFCEC", // ChromeOS root
	"7F02": "2E0A753D-9E48-43B0-8337-B15192CB1B5E", // ChromeOS reserved
	"8200": "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F", // Linux swap
	"8300": "0FC63DAF-8483-4772-8E79-3D69D8477DE4", // Linux filesystem
	"8301": "8DA63339-0007-60C0-C436-083AC8230908", // Linux reserved
	"8302": "933AC7E1-2EB4-4F13-B844-0E14E2AEF915", // Linux /home
	"8303": "44479540-F297-41B2-9AF7-D131D5F0458A", // Linux x86 root
	"8304": "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709", // Linux x86-64 root
	"8305": "B921B045-1DF0-41C3-AF44-4C6F280D3FAE", // Linux ARM64 root
	"8306": "3B8F8425-20E0-4F3B-907F-1A25A76F98E8", // Linux /srv
	"8307": "69DAD710-2CE4-4E3C-B16C-21A1D49ABED3", // Linux ARM32 root
	"8308": "7FFEC5C9-2D00-49B7-8941-3EA10A5586B7", // Linux dm-crypt
	"8309": "CA7D7CCB-63ED-4C53-861C-1742536059CC", // Linux LUKS
	"830A": "993D8D3D-F80E-4225-855A-9DAF8ED7EA97", // Linux IA-64 root
	"830B": "D13C5D3B-B5D1-422A-B29F-9454FDC89D76", // Linux x86 root verity
	"830C": "2C7357ED-EBD2-46D9-AEC1-23D437EC2BF5", // Linux x86-64 root verity
	"830D": "7386CDF2-203C-47A9-A498-F2ECCE45A2D6", // Linux ARM32 root verity
	"830E": "DF3300CE-D69F-4C92-978C-9BFB0F38D820", // Linux ARM64 root verity
	"8310": "4D21B016-B534-45C2-A9FB-5C16E091FD2D", // Linux /var
	"8311": "7EC6F557-3BC5-4ACA-B293-16EF5DF639D1", // Linux /var/tmp
	"8312": "773F91EF-66D4-49B5-BD83-D683BF40AD16", // Linux user's home
	"8313": "75250D76-8CC6-458E-BD66-BD47CC81A812", // Linux x86 /usr
	"8314": "8484680C-9521-48C6-9C11-B0720656F69E", // Linux x86-64 /usr
	"8315": "7D0359A3-02B3-4F0A-865C-654403E70625", // Linux ARM32 /usr
	"8316": "B0E01050-EE5F-4390-949A-9101B17104E9", // Linux ARM64 /usr
	"8400": "D3BFE2DE-3DAF-11DF-BA40-E3A556D89593", // Intel Rapid Start
	"8E00": "E6D6D379-F507-44C2-A23C-238F2A3DF928", // Linux LVM
	"A500": "516E7CB4-6ECF-11D6-8FF8-00022D09712B", // FreeBSD disklabel
	"A501": "83BD6B9D-7F41-11DC-BE0B-001560B84F0F", // FreeBSD boot
	"A502": "516E7CB5-6ECF-11D6-8FF8-00022D09712B", // FreeBSD swap
	"A503": "516E7CB6-6ECF-11D6-8FF8-00022D09712B", // FreeBSD UFS
	"A504": "516E7CBA-6ECF-11D6-8FF8-00022D09712B", // FreeBSD ZFS
	"A505": "516E7CB8-6ECF-11D6-8FF8-00022D09712B", // FreeBSD Vinum/RAID
	"A600": "824CC7A0-36A8-11E3-890A-952519AD3F61", // OpenBSD disklabel
	"AB00": "426F6F74-0000-11AA-AA11-00306543ECAC", // Apple recovery HD
	"AF00": "48465300-0000-11AA-AA11-00306543ECAC", // Apple HFS/HFS+
	"AF0A": "7C3457EF-0000-11AA-AA11-00306543ECAC", // Apple APFS
	"B000": "3DE21764-95BD-54BD-A5C3-4ABE786F38A8", // U-Boot boot loader
	"BE00": "6A82CB45-1DD2-11B2-99A6-080020736631", // Solaris boot
	"BF00": "6A85CF4D-1DD2-11B2-99A6-080020736631", // Solaris root
	"BF01": "6A898CC3-1DD2-11B2-99A6-080020736631", // Solaris /usr & Mac ZFS
	"BF02": "6A87C46F-1DD2-11B2-99A6-080020736631", // Solaris swap
	"E900": "8C8F8EFF-AC95-4770-814A-21994F2DBC8F", // Veracrypt data
	"EA00": "BC13C2FF-59E6-4262-A352-B275FD6F7172", // XBOOTLDR
	"ED00": "F4019732-066E-4E12-8273-346C5641494F", // Sony system partition
	"ED01": "BFBFAFE7-A34F-448A-9A5B-6213EB736C22", // Lenovo system partition
	"EF00": "C12A7328-F81F-11D2-BA4B-00A0C93EC93B", // EFI system partition
	"EF01": "024DEE41-33E7-11D3-9D69-0008C781F39F", // MBR partition scheme
	"EF02": "21686148-6449-6E6F-744E-656564454649", // BIOS boot partition
	"FD00": "A19D880F-05FC-4D3B-A006-743F0F84911E", // Linux RAID
}

var (
	hexCodeRE = regexp.MustCompile(`^[A-Fa-f0-9]{4}$`)
	guidRE    = regexp.MustCompile(`^[A-Fa-f0-9]{8}-[A-Fa-f0-9]{4}-[A-Fa-f0-9]{4}-[A-Fa-f0-9]{4}-[A-Fa-f0-9]{12}$`)
)

// TypeGUID turns a partition type as disko accepts it (sgdisk code or
// GUID) into the GUID written to the table.
func TypeGUID(t string) (string, bool) {
	switch {
	case guidRE.MatchString(t):
		return strings.ToUpper(t), true
	case hexCodeRE.MatchString(t):
		g, ok := sgdiskTypes[strings.ToUpper(t)]
		return g, ok
	}
	return "", false
}

// TypeCode is the reverse of TypeGUID for display: the sgdisk code of a
// GUID, or the GUID itself.
func TypeCode(guid string) string {
	g := strings.ToUpper(guid)
	best := ""
	for code, v := range sgdiskTypes {
		if v == g && (best == "" || code < best) {
			best = code
		}
	}
	if best != "" {
		return best
	}
	return g
}
