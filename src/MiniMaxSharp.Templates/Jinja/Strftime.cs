using System.Globalization;
using System.Text;

namespace MiniMaxSharp.Templates.Jinja;

/// <summary>Python's datetime.strftime for the C locale, including glibc's "%-d" (no padding) form.</summary>
internal static class Strftime
{
    private static readonly string[] Months =
        ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"];

    private static readonly string[] Days = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];

    public static string Format(DateTime time, string format)
    {
        var sb = new StringBuilder();
        for (int i = 0; i < format.Length; i++)
        {
            if (format[i] != '%')
            {
                sb.Append(format[i]);
                continue;
            }
            if (++i >= format.Length)
                throw new TemplateException("strftime_now: format ends with a lone '%'");
            bool unpadded = format[i] == '-';
            if (unpadded && ++i >= format.Length)
                throw new TemplateException("strftime_now: format ends with '%-'");
            char code = format[i];
            string Number(int value, int width) =>
                value.ToString(unpadded ? "D" : "D" + width, CultureInfo.InvariantCulture);
            int hour12 = time.Hour % 12 == 0 ? 12 : time.Hour % 12;
            sb.Append(code switch
            {
                'Y' => time.Year.ToString(CultureInfo.InvariantCulture),
                'y' => Number(time.Year % 100, 2),
                'm' => Number(time.Month, 2),
                'd' => Number(time.Day, 2),
                'e' => time.Day.ToString(CultureInfo.InvariantCulture).PadLeft(unpadded ? 1 : 2),
                'H' => Number(time.Hour, 2),
                'I' => Number(hour12, 2),
                'M' => Number(time.Minute, 2),
                'S' => Number(time.Second, 2),
                'f' => (time.Ticks % TimeSpan.TicksPerSecond / 10).ToString("D6", CultureInfo.InvariantCulture),
                'j' => Number(time.DayOfYear, 3),
                'p' => time.Hour < 12 ? "AM" : "PM",
                'b' or 'h' => Months[time.Month - 1][..3],
                'B' => Months[time.Month - 1],
                'a' => Days[(int)time.DayOfWeek][..3],
                'A' => Days[(int)time.DayOfWeek],
                'w' => ((int)time.DayOfWeek).ToString(CultureInfo.InvariantCulture),
                'u' => (time.DayOfWeek == DayOfWeek.Sunday ? 7 : (int)time.DayOfWeek).ToString(CultureInfo.InvariantCulture),
                'F' => time.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture),
                'T' => time.ToString("HH:mm:ss", CultureInfo.InvariantCulture),
                'D' => time.ToString("MM/dd/yy", CultureInfo.InvariantCulture),
                '%' => "%",
                _ => throw new TemplateException($"strftime_now: unsupported format code '%{code}'"),
            });
        }
        return sb.ToString();
    }
}
