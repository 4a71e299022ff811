using System.Text.Json;

namespace MiniMaxSharp.Checkpoints;

/// <summary>
/// All safetensors files of a model folder seen as one name → tensor map. With
/// <c>model.safetensors.index.json</c> the index's <c>weight_map</c> decides which shard holds each tensor
/// (and only listed tensors are exposed); without it a lone <c>model.safetensors</c> is the checkpoint, as in
/// Hugging Face (other safetensors files beside it, such as saved gradients, are not weights), and failing that
/// every <c>*.safetensors</c> file in the folder is used.
/// A tensor stored in two files is an error either way, since it is ambiguous which copy is meant.
/// </summary>
public sealed class CheckpointFiles : IDisposable
{
    public const string IndexFileName = "model.safetensors.index.json";
    public const string SingleFileName = "model.safetensors";

    private readonly Dictionary<string, (SafeTensorsFile File, SafeTensorInfo Info)> _tensors;
    private readonly string[] _sortedNames;

    public string Directory { get; }
    public IReadOnlyList<SafeTensorsFile> Files { get; }
    /// <summary>Every tensor name, in ordinal order.</summary>
    public IReadOnlyCollection<string> Names => _sortedNames;

    private CheckpointFiles(string directory, List<SafeTensorsFile> files, Dictionary<string, (SafeTensorsFile, SafeTensorInfo)> tensors)
    {
        Directory = directory;
        Files = files;
        _tensors = tensors;
        _sortedNames = tensors.Keys.Order(StringComparer.Ordinal).ToArray();
    }

    public static CheckpointFiles Open(string modelDir)
    {
        ArgumentNullException.ThrowIfNull(modelDir);
        var dir = Path.GetFullPath(modelDir);
        if (!System.IO.Directory.Exists(dir))
            throw new CheckpointException($"{dir}: model folder does not exist");
        var indexPath = Path.Combine(dir, IndexFileName);
        return File.Exists(indexPath) ? OpenIndexed(dir, indexPath) : OpenAll(dir);
    }

    public bool Contains(string name) => _tensors.ContainsKey(name);

    public (SafeTensorsFile File, SafeTensorInfo Info) Get(string name)
    {
        if (_tensors.TryGetValue(name, out var entry)) return entry;
        throw new CheckpointException($"{Directory}: checkpoint has no tensor named '{name}' ({_tensors.Count} tensors in {Files.Count} files)");
    }

    public void Dispose()
    {
        foreach (var f in Files) f.Dispose();
    }

    private static CheckpointFiles OpenAll(string dir)
    {
        var single = Path.Combine(dir, SingleFileName);
        var paths = File.Exists(single)
            ? [single]
            : System.IO.Directory.GetFiles(dir, "*.safetensors").Order(StringComparer.Ordinal).ToList();
        if (paths.Count == 0)
            throw new CheckpointException($"{dir}: no *.safetensors files and no {IndexFileName}");
        return OpenChecked(dir, paths, weightMap: null, indexPath: null);
    }

    private static CheckpointFiles OpenIndexed(string dir, string indexPath)
    {
        var weightMap = ReadWeightMap(indexPath);
        var shardPaths = new List<string>();
        foreach (var shard in weightMap.Values.Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal))
        {
            var shardPath = Path.Combine(dir, shard);
            if (!File.Exists(shardPath))
                throw new CheckpointException($"{indexPath}: weight_map names shard '{shard}', which does not exist in {dir}");
            shardPaths.Add(shardPath);
        }
        return OpenChecked(dir, shardPaths, weightMap, indexPath);
    }

    /// <summary>Opens each file once and builds the tensor map, closing everything again on any error.</summary>
    private static CheckpointFiles OpenChecked(string dir, List<string> paths, Dictionary<string, string>? weightMap, string? indexPath)
    {
        var files = new List<SafeTensorsFile>();
        try
        {
            var owner = new Dictionary<string, (SafeTensorsFile File, SafeTensorInfo Info)>(StringComparer.Ordinal);
            foreach (var path in paths)
            {
                var file = SafeTensorsFile.Open(path);
                files.Add(file);
                foreach (var (name, info) in file.Tensors)
                {
                    if (owner.TryGetValue(name, out var first))
                        throw new CheckpointException(
                            $"{dir}: tensor '{name}' is stored in both {Path.GetFileName(first.File.Path)} and {Path.GetFileName(file.Path)}");
                    owner.Add(name, (file, info));
                }
            }

            if (weightMap is null) return new CheckpointFiles(dir, files, owner);

            var tensors = new Dictionary<string, (SafeTensorsFile, SafeTensorInfo)>(StringComparer.Ordinal);
            foreach (var (name, shard) in weightMap)
            {
                if (!owner.TryGetValue(name, out var found) || Path.GetFileName(found.File.Path) != shard)
                    throw new CheckpointException($"{indexPath}: tensor '{name}' is mapped to shard '{shard}' but that shard does not contain it"
                        + (found.File is null ? "" : $" (it is in {Path.GetFileName(found.File.Path)})"));
                tensors.Add(name, found);
            }
            return new CheckpointFiles(dir, files, tensors);
        }
        catch
        {
            foreach (var f in files) f.Dispose();
            throw;
        }
    }

    private static Dictionary<string, string> ReadWeightMap(string indexPath)
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(File.ReadAllBytes(indexPath));
        }
        catch (JsonException e)
        {
            throw new CheckpointException($"{indexPath}: not valid JSON: {e.Message}", e);
        }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object
                || !doc.RootElement.TryGetProperty("weight_map", out var map) || map.ValueKind != JsonValueKind.Object)
                throw new CheckpointException($"{indexPath}: missing 'weight_map' object");
            var result = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var entry in map.EnumerateObject())
            {
                if (entry.Value.ValueKind != JsonValueKind.String)
                    throw new CheckpointException($"{indexPath}: weight_map entry '{entry.Name}' must be a shard file name string");
                var shard = entry.Value.GetString()!;
                // Shards live beside the index; a path would let an index reach files outside the model folder.
                if (shard.Length == 0 || Path.GetFileName(shard) != shard || shard is "." or "..")
                    throw new CheckpointException($"{indexPath}: weight_map entry '{entry.Name}' names '{shard}', which is not a plain file name");
                if (!result.TryAdd(entry.Name, shard))
                    throw new CheckpointException($"{indexPath}: weight_map lists tensor '{entry.Name}' twice");
            }
            if (result.Count == 0)
                throw new CheckpointException($"{indexPath}: weight_map is empty");
            return result;
        }
    }
}
